"""Data-list YAML parsing, sampling strategies, prefix remapping and up-front record validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streamforest.data.data_list import (
    DataListError,
    apply_sampling_strategy,
    load_data_list,
    parse_root_map,
    remap_path,
)

REPO = Path(__file__).resolve().parents[1]


def _records(n: int, media: str | None = "image") -> list[dict]:
    out = []
    for i in range(n):
        rec = {"id": i, "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": f"a{i}"}]}
        if media:
            rec[media] = f"m{i}.png"
        out.append(rec)
    return out


def _write(tmp: Path, name: str, obj) -> Path:
    p = tmp / name
    p.write_text(json.dumps(obj) if name.endswith(".json") else yaml.safe_dump(obj))
    return p


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("all", list(range(10))),
        ("first:3", [0, 1, 2]),
        ("first2:3", [3, 4, 5]),
        ("first3:3", [6, 7, 8]),
        ("first4:3", [9]),
        ("end:2", [8, 9]),
        ("first:25%", [0, 1, 2]),  # ceil(25 * 10 / 100) = 3
        ("end:10%", [9]),
        ("first:0", []),
    ],
)
def test_sampling_strategies(strategy: str, expected: list[int]) -> None:
    assert apply_sampling_strategy(list(range(10)), strategy) == expected


@pytest.mark.parametrize("bad", ["random", "first:x", "middle:3", "first:1.5"])
def test_bad_sampling_strategy_is_named(bad: str) -> None:
    with pytest.raises(DataListError, match="sampling_strategy"):
        apply_sampling_strategy(list(range(4)), bad, where="list.yaml")


def test_root_map_parsing_and_longest_prefix() -> None:
    m = parse_root_map("/old=/new; /old/videos=/fast/videos ;")
    assert m == {"/old": "/new", "/old/videos": "/fast/videos"}
    assert remap_path("/old/videos/a.mp4", m) == "/fast/videos/a.mp4"
    assert remap_path("/old/images/a.png", m) == "/new/images/a.png"
    assert remap_path("/other/a.png", m) == "/other/a.png"
    with pytest.raises(DataListError, match="no '='"):
        parse_root_map("justapath")


def test_load_data_list_resolves_samples_and_joins(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for i in range(6):
        (media / f"m{i}.png").write_bytes(b"x")
    _write(tmp_path, "a.json", _records(6))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in _records(2, media=None)) + "\n")
    dl = _write(
        tmp_path,
        "list.yaml",
        {"datasets": [
            {"json_path": "a.json", "sampling_strategy": "end:2", "data_root": "media", "video_read_type": "decord"},
            {"json_path": "b.jsonl"},
        ]},
    )
    data = load_data_list(dl)
    assert data.counts == [2, 2]
    assert [r["id"] for r in data.records] == [4, 5, 0, 1]
    assert data.records[0]["image"] == str(media / "m4.png")
    assert data.records[0]["video_read_type"] == "decord"
    assert "image" not in data.records[2]


def test_env_and_config_remap_without_editing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "local_media"
    local.mkdir()
    (local / "m0.png").write_bytes(b"x")
    _write(tmp_path, "a.json", _records(1))
    dl = _write(tmp_path, "list.yaml", {"datasets": [{"json_path": "a.json", "data_root": "/cluster/share/media"}]})
    with pytest.raises(DataListError, match="STREAMFOREST_DATA_ROOT_MAP"):
        load_data_list(dl)
    monkeypatch.setenv("STREAMFOREST_DATA_ROOT_MAP", f"/cluster/share={tmp_path / 'wrong'}")
    # the config key wins over the environment for the same prefix
    data = load_data_list(dl, data_root_map={"/cluster/share/media": str(local)})
    assert data.records[0]["image"] == str(local / "m0.png")
    monkeypatch.setenv("STREAMFOREST_DATA_ROOT_MAP", f"/cluster/share/media={local}")
    assert load_data_list(dl).records[0]["image"] == str(local / "m0.png")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"image": "a.png"}, "conversations"),
        ({"conversations": []}, "conversations"),
        ({"conversations": [{"from": "human"}]}, "value"),
        ({"conversations": [{"role": "user", "content": "x"}]}, "from"),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "from"),
        ({"image": 3, "conversations": [{"from": "human", "value": "x"}]}, "image"),
        ({"video": "v.mp4", "start": "0", "conversations": [{"from": "human", "value": "x"}]}, "start"),
        ({"video": "v.mp4", "start": 5, "end": 2, "conversations": [{"from": "human", "value": "x"}]}, "end"),
    ],
)
def test_malformed_records_fail_at_start_naming_file_record_field(tmp_path: Path, record: dict, field: str) -> None:
    _write(tmp_path, "bad.json", [*_records(2, media=None), record])
    dl = _write(tmp_path, "list.yaml", {"datasets": [{"json_path": "bad.json", "media_type": "text"}]})
    with pytest.raises(DataListError) as err:
        load_data_list(dl)
    msg = str(err.value)
    assert "bad.json record 2" in msg and field in msg


def test_malformed_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("datasets: [ {json_path: a.json\n")
    with pytest.raises(DataListError, match="broken.yaml: invalid YAML"):
        load_data_list(tmp_path / "broken.yaml")
    _write(tmp_path, "nodatasets.yaml", {"data": []})
    with pytest.raises(DataListError, match="'datasets'"):
        load_data_list(tmp_path / "nodatasets.yaml")
    _write(tmp_path, "unknown.yaml", {"datasets": [{"json_path": "a.json", "sampling": "all"}]})
    with pytest.raises(DataListError, match=r"datasets\[0\].*unknown key.*sampling"):
        load_data_list(tmp_path / "unknown.yaml")
    (tmp_path / "bad.json").write_text("[{]")
    _write(tmp_path, "l.yaml", {"datasets": [{"json_path": "bad.json"}]})
    with pytest.raises(DataListError, match="bad.json: invalid JSON"):
        load_data_list(tmp_path / "l.yaml")
    _write(tmp_path, "missing.yaml", {"datasets": [{"json_path": "nope.json"}]})
    with pytest.raises(DataListError, match="nope.json.*does not exist"):
        load_data_list(tmp_path / "missing.yaml")
    with pytest.raises(DataListError, match=r"\.yaml data list"):
        load_data_list(tmp_path / "a.json")


def test_shipped_data_lists_parse() -> None:
    lists = sorted((REPO / "anno" / "data_list").glob("*.yaml"))
    assert len(lists) == 5
    for path in lists:
        doc = yaml.safe_load(path.read_text())
        assert doc["datasets"], path
        for entry in doc["datasets"]:
            assert set(entry) <= {"json_path", "sampling_strategy", "data_root", "media_type", "video_read_type"}
            apply_sampling_strategy(list(range(100)), entry.get("sampling_strategy", "all"))
