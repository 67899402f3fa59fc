"""Tokenizer loading (issue 10 §3): ids equal the checkpoint's ``tokenizer.json`` as written, for any pre-tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamforest.model.loader import load_tokenizer
from streamforest.prompts import build_inference_prompt, time_message
from streamforest.tiny import make_tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _prompts() -> list[str]:
    """Full generation prompts with time messages (numbers with a leading space: " 5", " 35.0", …)."""
    secs = ["0.5", "5.0", "12.5", "35.0"]
    return [
        build_inference_prompt(question, time_message(kind, secs, 35.5))
        for kind in ("short_online_v2", "short", "short_online", "uniform")
        for question in ("What happens 5 seconds later? A. 5 cars B. 12 cars", "Describe the scene.")
    ]


def _raw_ids(ckpt: Path, text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(ckpt / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def _write_released_files(out: Path, tokenizer_class: str) -> None:
    """config.json with ``model_type: qwen2`` and a tokenizer_config.json naming ``tokenizer_class``."""
    (out / "config.json").write_text(
        json.dumps({"model_type": "qwen2", "architectures": ["LlavaQwenForCausalLM"]})
    )
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = tokenizer_class
    (out / "tokenizer_config.json").write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def gpt2_style(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE whose pre-tokenizer (GPT-2 regex) keeps " 5" whole, saved as a released checkpoint would."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [p.replace("<|im_start|>", "").replace("<|im_end|>", "") for p in _prompts()]
    tok.train_from_iterator(corpus * 8 + [" 5 5 5 35 12"] * 20, trainer)
    out = tmp_path_factory.mktemp("gpt2_style_tokenizer")
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    ).save_pretrained(str(out))
    _write_released_files(out, "PreTrainedTokenizerFast")
    return out


def test_non_qwen_pre_tokenizer_is_used_as_written(gpt2_style: Path) -> None:
    tokenizer = load_tokenizer(gpt2_style)
    assert len(_raw_ids(gpt2_style, " 5")) == 1  # the file keeps " 5" whole (Qwen2's regex would give 2 ids)
    assert _ids(tokenizer, " 5") == _raw_ids(gpt2_style, " 5")
    for prompt in _prompts():
        assert _ids(tokenizer, prompt) == _raw_ids(gpt2_style, prompt), prompt
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL] == [0, 1, 2]
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")


def test_qwen2_style_tokenizer_unchanged(tmp_path: Path) -> None:
    """The tiny tokenizer has Qwen2's pre-tokenizer: the file, ``Qwen2Tokenizer`` and our loader agree."""
    from transformers import AutoTokenizer

    make_tiny_tokenizer(tmp_path)
    _write_released_files(tmp_path, "Qwen2Tokenizer")
    ours, qwen2 = load_tokenizer(tmp_path), AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(qwen2).__name__ == "Qwen2Tokenizer"  # what transformers 5 resolves model_type "qwen2" to
    assert len(_raw_ids(tmp_path, " 5")) == 2  # digits split one by one, like Qwen2
    for prompt in _prompts():
        assert _ids(ours, prompt) == _ids(qwen2, prompt) == _raw_ids(tmp_path, prompt), prompt
    assert ours.decode(_ids(ours, _prompts()[0])) == _prompts()[0]


def test_one_tokenizer_load_path() -> None:
    """Only ``streamforest.model.loader.load_tokenizer`` loads tokenizers from disk (one home)."""
    users = [
        p.relative_to(REPO).as_posix()
        for root in ("streamforest", "llava")
        for p in (REPO / root).rglob("*.py")
        if "AutoTokenizer" in p.read_text() or "Tokenizer.from_pretrained" in p.read_text()
    ]
    assert users == ["streamforest/model/loader.py"]
