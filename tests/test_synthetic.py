"""Synthetic driving data: formats, answers checked against the decoded pixels, determinism, idempotence."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from streamforest.synthetic import questions as Q
from streamforest.synthetic.dataset import QUICK, DatasetParams, generate_dataset, make_scene
from streamforest.synthetic.scenes import LIGHT_COLORS, OBJECT_COLORS, SIDES, Scene, SceneConfig
from streamforest.synthetic.writer import read_video, write_video

SEED = 0


def _quick(out: Path, seed: int = SEED, **kw):
    return generate_dataset(out, seed=seed, **{**QUICK, **kw})


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):
    return _quick(tmp_path_factory.mktemp("synthetic") / "data")


@pytest.fixture(scope="module")
def params() -> DatasetParams:
    return DatasetParams(seed=SEED, **QUICK)


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.sum((rgb.astype(float) - np.asarray(palette[name])) ** 2)))


def _sampled_indices(vlen: int, fps: float, end: float) -> list[int]:
    """Reference decord clip sampling (REFERENCE §5.3): ``dynamic_fps1``, mid-bin, clip ``[0, end]``, min 4 frames."""
    e = min(vlen / fps - 0.1, end)
    n_clip = int(e * fps)
    n = int(n_clip / fps + 1)
    n = max(n, 4) if n_clip >= 4 else n_clip
    edges = np.linspace(0, n_clip, n + 1).astype(int)
    return [(a + b - 1) // 2 for a, b in zip(edges[:-1], edges[1:])]


def _color_mask(frame: np.ndarray, rgb: tuple[int, int, int], side: str, tol: float = 60.0) -> np.ndarray:
    """Pixels within ``tol`` of ``rgb`` on the road half of ``side`` (the light row excluded)."""
    h, w = frame.shape[:2]
    mask = np.linalg.norm(frame.astype(float) - np.asarray(rgb, float), axis=-1) < tol
    mask[: h // 4] = False
    if side == "left":
        mask[:, w // 2 :] = False
    else:
        mask[:, : w // 2] = False
    return mask


# ---------------------------------------------------------------------------------------------- formats
def test_prompt_format_golden():
    assert Q.format_mc_prompt("What colour is the traffic light now?", ["red", "yellow", "green"]) == (
        "What colour is the traffic light now?\nA. red\nB. yellow\nC. green\n"
        "Answer with the option's letter from the given choices directly."
    )


def _check_turns(rec: dict, where: str) -> tuple[str, str]:
    conv = rec["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt"], where
    assert conv[0]["value"].count("<image>") == 1 and conv[0]["value"].startswith("<image>\n"), where
    assert "<image>" not in conv[1]["value"] and conv[1]["value"].strip(), where
    return conv[0]["value"], conv[1]["value"]


def test_training_records_valid(ds):
    images = _load(ds.anno["stage1"])
    assert images and all((ds.images / r["image"]).is_file() for r in images)
    for r in images:
        assert set(r) == {"id", "image", "conversations"}
        _check_turns(r, r["id"])
    for stage in ("stage2", "stage3"):
        recs = _load(ds.anno[stage])
        assert recs
        for r in recs:
            assert set(r) == {"id", "video", "conversations"} and (ds.videos_train / r["video"]).is_file()
            _check_turns(r, r["id"])
    online = _load(ds.anno["stage4"])
    ids = [r["id"] for r in online]
    assert len(set(ids)) == len(ids)
    n_mc = n_free = 0
    for r in online:
        assert set(r) == {"id", "video", "start", "end", "conversations"}
        assert r["video"].startswith("train_") and (ds.videos_train / r["video"]).is_file()
        assert r["start"] == 0.0 and Q.WINDOW_S <= r["end"] <= QUICK["duration_range"][1]
        human, gpt = _check_turns(r, r["id"])
        if human.endswith(Q.MC_POST_PROMPT):
            letters = [line[0] for line in human.split("\n") if len(line) > 2 and line[1:3] == ". "]
            assert 3 <= len(letters) <= 4 and gpt in letters, r
            n_mc += 1
        else:
            assert len(gpt.split()) <= 3, r
            n_free += 1
    assert n_mc > 0 and n_free > 0


def test_data_lists_reference_format_and_loadable(ds):
    from streamforest.data.data_list import load_data_list

    for stage, path in ds.data_lists.items():
        doc = yaml.safe_load(path.read_text())
        for entry in doc["datasets"]:
            assert set(entry) <= {"json_path", "data_root", "sampling_strategy", "video_read_type"}
            assert os.path.isabs(entry["json_path"]) and Path(entry["json_path"]).is_file()
            assert entry["sampling_strategy"] == "all" and Path(entry["data_root"]).is_dir()
            assert entry.get("video_read_type") == (None if stage == "stage1" else "decord")
        loaded = load_data_list(path, check_media=True)
        assert len(loaded.records) == sum(len(_load(Path(e["json_path"]))) for e in doc["datasets"])


def test_eval_split_valid_and_balanced(ds):
    docs = {c: _load(p) for c, p in ds.eval_configs.items()}
    assert all(docs.values())
    fields = {"question_id", "video", "question", "candidates", "answer", "task", "subtask", "subsubtask", "start", "end"}
    train_videos = {r["video"] for r in _load(ds.anno["stage4"])}
    qids = [d["question_id"] for ds_ in docs.values() for d in ds_]
    assert len(set(qids)) == len(qids)
    for config, items in docs.items():
        for d in items:
            assert set(d) == fields
            assert 3 <= len(d["candidates"]) <= 4 and d["answer"] in d["candidates"]
            assert len(set(d["candidates"])) == len(d["candidates"])
            assert (ds.videos_eval / d["video"]).is_file() and d["video"] not in train_videos
            assert d["start"] == 0.0 and d["end"] > d["start"]
            assert Q.FAMILIES[_family(d)].config == config
    manifest = _load(ds.manifest)
    for info in manifest["eval"].values():
        for sub, stats in info.get("subtasks", {}).items():
            assert len(set(stats["letters"].values())) == 1, (sub, stats)  # correct letter uniform
            if sub != "appearance_order":
                assert len(set(stats["answers"].values())) == 1, (sub, stats)  # answer values uniform
            n_options = 4 if sub in ("object_color", "passed_object_color") else 3
            assert stats["chance"] == pytest.approx(1 / n_options, abs=1e-4)
    assert 0 < manifest["eval"]["overall"]["chance"] < 0.4


def test_eval_split_loads_with_datasets(ds):
    datasets = pytest.importorskip("datasets")
    for config, path in ds.eval_configs.items():
        split = datasets.load_dataset(str(ds.eval_root), name=config, split="train", cache_dir=str(ds.root / "hf_cache"))
        assert len(split) == len(_load(path)) and split[0]["answer"] in split[0]["candidates"]


def _family(doc: dict) -> str:
    return next(f for f, spec in Q.FAMILIES.items() if spec.subtask == doc["subtask"])


# ---------------------------------------------------------------------------------------------- answers vs pixels
def test_eval_answers_match_decoded_frames(ds, params):
    metas = {m["video"]: m for m in _load(ds.meta["eval"])}
    checked: dict[str, int] = {}
    for items in (_load(p) for p in ds.eval_configs.values()):
        for d in items:
            frames, fps = read_video(ds.videos_eval / d["video"])
            assert fps == params.fps
            idx = _sampled_indices(len(frames), fps, d["end"])
            scene = make_scene(params, "eval", int(d["video"][5:9]))
            family = _family(d)
            _CHECKS[family](d, frames, idx, scene, metas[d["video"]])
            checked[family] = checked.get(family, 0) + 1
    assert set(checked) == set(Q.FAMILIES), checked


def _check_light(d, frames, idx, scene, meta):
    x, y = scene.light_disc_center()
    seen = _nearest(frames[idx[-1]][y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0), LIGHT_COLORS)
    if d["subtask"] == "traffic_light_color":
        assert seen == d["answer"], d
    elif d["subtask"] == "traffic_light_action":
        assert Q.ACTION_FOR_LIGHT[seen] == d["answer"], d
    else:  # forward prediction: the phase after the current one in the ground-truth timeline
        t = idx[-1] / scene.config.fps
        phases = meta["light_phases"]
        cur = next(i for i, (_, s, e) in enumerate(phases) if s <= t < e)
        assert phases[cur][0] == seen
        if cur + 1 < len(phases):
            assert phases[cur + 1][0] == d["answer"], d
        assert Q.next_color(seen) == d["answer"], d


def _check_object_now(d, frames, idx, scene, meta):
    side, k = d["subsubtask"], idx[-1]
    (track, vis), *rest = scene.on_side(side, k)
    assert not rest and vis >= Q.MIN_VIS
    if d["subtask"] == "object_color":
        mask = _color_mask(frames[k], OBJECT_COLORS[d["answer"]], side)
        assert mask.sum() >= 40, d  # a large blob of the answer colour on that side
        others = [c for c in OBJECT_COLORS if c != d["answer"]]
        assert all(_color_mask(frames[k], OBJECT_COLORS[c], side).sum() < 10 for c in others), d
    elif d["subtask"] == "object_kind":
        assert vis >= Q.KIND_MIN_VIS and track.kind == d["answer"], d
        ys, xs = np.nonzero(_color_mask(frames[k], OBJECT_COLORS[track.color], side))
        w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1  # measured on the decoded frame
        kind = "pedestrian" if w < 16 else ("truck" if h > 40 else "car")
        assert kind == d["answer"], (d, w, h)
    elif d["subtask"] == "object_motion":
        cy = [np.nonzero(_color_mask(frames[j], OBJECT_COLORS[track.color], side))[0].mean() for j in (k - 1, k)]
        dy = cy[1] - cy[0]
        seen = "stopped" if abs(dy) < 1.0 else ("towards us" if dy > 0 else "away from us")
        if vis >= 0.999 and scene.visibility(track, k - 1) >= 0.999:
            assert seen == d["answer"], (d, dy)
        assert Q.motion_at(track, k) == d["answer"], d


def _check_passed(d, frames, idx, scene, meta):
    side, fps = d["subsubtask"], scene.config.fps
    window_start = int(np.ceil((d["end"] - Q.WINDOW_S) * fps - 1e-9))
    earlier = [t for t in meta["tracks"] if t["side"] == side and t["last_frame"] < window_start]
    assert len(earlier) == 1 and earlier[0]["color"] == d["answer"], d
    gone = earlier[0]
    track = next(t for t in scene.tracks if t.oid == gone["oid"])
    assert sum(scene.visibility(track, i) >= Q.MIN_VIS for i in idx) >= 2, d  # the sampled frames show it
    mid = int(round((gone["first_visible_s"] + gone["last_visible_s"]) / 2 * fps))
    assert _color_mask(frames[mid], OBJECT_COLORS[d["answer"]], side).sum() >= 40, d
    assert _color_mask(frames[idx[-1]], OBJECT_COLORS[d["answer"]], side).sum() < 10, d  # gone now


def _check_first(d, frames, idx, scene, meta):
    in_clip = [t for t in meta["tracks"] if t["first_frame"] / scene.config.fps <= d["end"]]
    descs = [f"{t['color']} {t['kind']}" for t in in_clip]
    assert all(descs.count(c) == 1 for c in d["candidates"]), (d, descs)  # each candidate names one road user
    times = {c: in_clip[descs.index(c)]["first_visible_s"] for c in d["candidates"]}
    assert min(times, key=times.get) == d["answer"], (d, times)
    assert max(times.values()) <= d["end"] - Q.WINDOW_S


_CHECKS = {
    "light_color": _check_light, "stop_or_go": _check_light, "light_next": _check_light,
    "object_color": _check_object_now, "object_kind": _check_object_now, "object_motion": _check_object_now,
    "passed_color": _check_passed, "first_appeared": _check_first,
}  # fmt: skip


def test_online_training_answers_follow_ground_truth(ds, params):
    """Stage-4 light questions: the letter names the colour shown at the last frame the model samples."""
    n = 0
    for r in _load(ds.anno["stage4"]):
        human, gpt = r["conversations"][0]["value"], r["conversations"][1]["value"]
        if "traffic light now?" not in human or not human.endswith(Q.MC_POST_PROMPT):
            continue
        scene = make_scene(params, "train", int(r["video"][6:10]))
        idx = _sampled_indices(scene.config.n_frames, scene.config.fps, r["end"])
        assert Q.LIGHT_OPTIONS["ABC".index(gpt)] == scene.light(idx[-1]), r
        n += 1
    assert n > 0


# ---------------------------------------------------------------------------------------------- scene model
def test_scene_rules():
    scene = Scene(SceneConfig(duration=30.0), seed=3)
    cfg = scene.config
    assert [p.color for p in scene.light_phases[:6]] in (
        ["green", "yellow", "red"] * 2, ["yellow", "red", "green"] * 2, ["red", "green", "yellow"] * 2
    )
    for k in range(cfg.n_frames):
        for side in SIDES:
            assert len(scene.on_side(side, k)) <= 1  # one road user per side at a time
    for tr in scene.tracks:
        if tr.side != "right":
            continue
        for k in range(tr.first_frame + 1, min(tr.last_frame, cfg.n_frames - 1) + 1):
            top_prev, top = tr.position(k - 1)[1] - tr.height / 2, tr.position(k)[1] - tr.height / 2
            if top_prev >= cfg.stop_line_y > top:
                assert scene.light(k) == "green"  # nobody crosses the stop line unless the light is green
    frame = scene.render(5.0)
    assert frame.shape == (cfg.height, cfg.width, 3) and frame.dtype == np.uint8
    x, y = scene.light_disc_center()
    assert tuple(frame[y, x]) == LIGHT_COLORS[scene.light(20)]


def test_writer_roundtrip_and_bad_input(tmp_path):
    frames = [np.full((32, 48, 3), v, np.uint8) for v in (0, 128, 255)]
    path = write_video(tmp_path / "a.mp4", frames, fps=4)
    decoded, fps = read_video(path)
    assert decoded.shape == (3, 32, 48, 3) and fps == 4
    assert np.abs(decoded.astype(int) - np.stack(frames)).max() <= 3
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "b.mp4", [np.zeros((32, 32, 3), np.float32)], fps=4)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "c.mp4", [np.zeros((31, 32, 3), np.uint8)], fps=4)
    assert not (tmp_path / "b.mp4").exists() and not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match="n_train_videos"):
        generate_dataset(tmp_path / "d", n_train_videos=0)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['n_videos'\]"):
        generate_dataset(tmp_path / "d", n_videos=3)
    with pytest.raises(ValueError, match="family_weights"):
        generate_dataset(tmp_path / "d", family_weights=(("object_size", 2),))
    with pytest.raises(ValueError, match=r"family_weights .*give \(family, integer weight\) pairs"):
        generate_dataset(tmp_path / "d", family_weights=("object_kind",))
    with pytest.raises(ValueError, match="family_weights"):
        generate_dataset(tmp_path / "d", family_weights={"object_kind": "many"})
    assert DatasetParams(family_weights={"object_kind": 3}).family_weights == (("object_kind", 3),)


# ---------------------------------------------------------------------------------------------- determinism
def _anno_bytes(ds) -> dict[str, bytes]:
    files = list(ds.anno.values()) + list(ds.eval_configs.values()) + list(ds.meta.values())
    return {p.name: p.read_bytes() for p in files}


def test_deterministic_per_seed(ds, tmp_path):
    again = _quick(tmp_path / "same")
    assert _anno_bytes(again) == _anno_bytes(ds)
    first_a, _ = read_video(ds.videos_train / "train_0000.mp4")
    first_b, _ = read_video(again.videos_train / "train_0000.mp4")
    assert np.array_equal(first_a[0], first_b[0])
    assert (ds.videos_eval / "eval_0001.mp4").read_bytes() == (again.videos_eval / "eval_0001.mp4").read_bytes()
    other = _quick(tmp_path / "other", seed=SEED + 1)
    assert _anno_bytes(other)["stage4_online_qa.json"] != _anno_bytes(ds)["stage4_online_qa.json"]
    first_c, _ = read_video(other.videos_train / "train_0000.mp4")
    assert not np.array_equal(first_a, first_c[: len(first_a)]) or len(first_a) != len(first_c)


def test_idempotent_rerun(tmp_path):
    paths = _quick(tmp_path / "d")
    stamp = {p: p.stat().st_mtime_ns for p in (paths.manifest, paths.videos_train / "train_0000.mp4")}
    t0 = time.perf_counter()
    assert _quick(tmp_path / "d").manifest == paths.manifest
    assert time.perf_counter() - t0 < 1.0
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing rewritten
    (paths.videos_eval / "eval_0000.mp4").unlink()  # incomplete -> regenerated
    _quick(tmp_path / "d")
    assert (paths.videos_eval / "eval_0000.mp4").is_file()
    _quick(tmp_path / "d", n_eval_videos=2)  # other parameters -> regenerated, stale files removed
    assert sorted(p.name for p in paths.videos_eval.iterdir()) == ["eval_0000.mp4", "eval_0001.mp4"]
    assert _load(paths.manifest)["params"]["n_eval_videos"] == 2


def test_cli_quick(tmp_path, capsys):
    from streamforest.synthetic.__main__ import main

    assert main([str(tmp_path / "cli"), "--quick", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "chance" in out and "stage4_online_mc" in out
    assert _load(tmp_path / "cli" / "manifest.json")["params"]["n_eval_videos"] == QUICK["n_eval_videos"]
    assert main([str(tmp_path / "bad"), "--quick", "--min-seconds", "3"]) == 2


# ---------------------------------------------------------------------------------------------- yes/no + pairs
def _yes_no_family(question: str) -> tuple[str, str]:
    from streamforest.synthetic.yesno import YESNO_TEMPLATES

    for family, template in YESNO_TEMPLATES.items():
        head, tail = template.split("{value}")
        if question.startswith(head) and question.endswith(tail):
            return family, question[len(head) : len(question) - len(tail)]
    raise AssertionError(f"not a yes/no question: {question!r}")


def test_yes_no_records_follow_ground_truth_and_probe_format(ds, params):
    """Every yes/no record is in the watch probe's exact prompt; its answer holds over the whole window, checked
    against the scene ground truth and (light) the decoded pixels of the last sampled frame."""
    from streamforest.prompts import watch_question

    recs = [r for r in _load(ds.anno["stage4"]) if r["id"].startswith("yesno_")]
    seen = {}
    for r in recs:
        human, gpt = _check_turns(r, r["id"])
        question = human.removeprefix("<image>\n").removesuffix("\nAnswer yes or no.")
        assert human == "<image>\n" + watch_question(question) and gpt in ("Yes", "No"), r
        family, value = _yes_no_family(question)
        scene = make_scene(params, "train", int(r["video"][6:10]))
        window = Q.window_frames(scene, r["end"])
        assert len(window) > 0
        if family == "light_is":
            truth = {scene.light(k) == value for k in window}
            frames, fps = read_video(ds.videos_train / r["video"])
            x, y = scene.light_disc_center()
            k = _sampled_indices(len(frames), fps, r["end"])[-1]
            shown = _nearest(frames[k][y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0), LIGHT_COLORS)
            assert (shown == value) == (gpt == "Yes"), r
        elif family == "side_object":
            truth = {bool(scene.on_side(value, k)) for k in window}
            assert all(len(scene.on_side(value, k)) <= 1 and all(v >= Q.MIN_VIS for _, v in scene.on_side(value, k)) for k in window)
        else:
            users = {tr.oid for k in window for tr, _ in scene.on_side(value, k)}
            assert len(users) == 1, r
            track = next(tr for tr in scene.tracks if tr.oid in users)
            truth = {Q.motion_at(track, k) == "stopped" for k in window}
            assert None not in {Q.motion_at(track, k) for k in window}
        assert truth == {gpt == "Yes"}, r  # the fact holds over the whole window
        seen.setdefault(family, Counter())[gpt] += 1
    assert set(seen) == {"light_is", "side_object", "object_stopped"}
    light = Counter()  # light_is comes in same-clip pairs: the colour shown (yes) and another colour (no)
    for r in recs:
        if " traffic light " in r["conversations"][0]["value"]:
            light[(r["video"], r["end"], r["conversations"][1]["value"])] += 1
    clips = {(v, e) for v, e, _ in light}
    assert clips and all(light[(v, e, "Yes")] == light[(v, e, "No")] == 1 for v, e in clips), light
    for family, counts in seen.items():
        assert counts["Yes"] == counts["No"] > 0, (family, counts)  # balanced
    manifest = _load(ds.manifest)
    assert manifest["counts"]["stage4_yes_no"] == len(recs)
    assert {f: s["answers"] for f, s in manifest["train_yes_no_answers"].items()} == {f: dict(sorted(c.items())) for f, c in seen.items()}


def test_light_questions_come_in_same_clip_pairs(ds):
    """Every multiple-choice "colour now" question has its "colour next" twin on the same clip and vice versa."""
    keys = {}
    for r in _load(ds.anno["stage4"]):
        human = r["conversations"][0]["value"]
        for family in ("light_color", "light_next"):
            if human.startswith("<image>\n" + Q.FAMILIES[family].template) and human.endswith(Q.MC_POST_PROMPT):
                keys.setdefault(family, set()).add((r["video"], r["end"]))
    assert keys["light_color"] and keys["light_color"] == keys["light_next"]


def test_additions_leave_existing_families_and_eval_unchanged(ds, tmp_path):
    """Without the additions the generator writes the previous mix: the eval split is byte-identical and the
    default mix is that mix plus the twins and the yes/no records (nothing of it dropped or changed)."""
    plain = _quick(tmp_path / "plain", yes_no_fraction=0.0, contrastive_pairs=False, family_weights=())
    assert [p.read_bytes() for p in plain.eval_configs.values()] == [p.read_bytes() for p in ds.eval_configs.values()]

    def content(paths) -> Counter:
        return Counter(json.dumps([r["video"], r["end"], r["conversations"]]) for r in _load(paths.anno["stage4"]))

    base, full = content(plain), content(ds)
    assert not base - full  # every earlier record is still there
    extra = full - base
    counts = _load(ds.manifest)["counts"]
    added = counts["stage4_online_mc_pairs"] + counts["stage4_online_mc_weighted"] + counts["stage4_yes_no"]
    assert sum(extra.values()) == added > 0
    assert _load(plain.manifest)["counts"]["stage4_online_mc"] == counts["stage4_online_mc"]


def test_truth_per_frame_and_onsets():
    from streamforest.synthetic.yesno import onsets, truth_per_frame

    scene = Scene(SceneConfig(duration=30.0), seed=3)
    fps = scene.config.fps
    green = truth_per_frame(scene, "light_is", "green")
    starts = [p.start for p in scene.light_phases if p.color == "green" and 0 < p.start < scene.config.duration]
    expected = ([0.0] if scene.light(0) == "green" else []) + [round(s * fps) / fps for s in starts]
    assert onsets(green, fps) == pytest.approx(expected, abs=1 / fps)
    left = truth_per_frame(scene, "side_object", "left")
    assert all(v == any(vis >= Q.MIN_VIS for _, vis in scene.on_side("left", k)) for k, v in enumerate(left))
    assert onsets([False, True, True, False, True], 2.0) == [0.5, 2.0] and onsets([True, False], 1.0) == [0.0]
    with pytest.raises(ValueError, match="unknown family"):
        truth_per_frame(scene, "light_colour", "green")


def test_select_yes_no_pairs_and_fallback():
    from streamforest.synthetic.yesno import YesNo, select_yes_no

    pool = []
    for v in range(6):  # clips with the left side occupied and the right empty, and the reverse
        pool += [YesNo("side_object", v, 5.0, "left", v % 2 == 0), YesNo("side_object", v, 5.0, "right", v % 2 == 1)]
        pool += [YesNo("side_object", v, 6.0, "left", True), YesNo("side_object", v, 6.0, "right", True)]  # no pair
    chosen = select_yes_no(pool, 8, np.random.default_rng(0))
    assert len(chosen) == 8 and {qa.q for qa in chosen} == {5.0}  # only clips with both answers
    by_clip = Counter((qa.video, qa.answer) for qa in chosen)
    assert all(by_clip[(v, True)] == by_clip[(v, False)] == 1 for v, _ in by_clip)
    assert Counter(qa.value for qa in chosen if qa.answer) == {"left": 2, "right": 2}  # balanced over sides
    unpaired = [qa for qa in pool if qa.q == 6.0] + [YesNo("side_object", 9, 7.0, "left", False)]
    fallback = select_yes_no(unpaired, 8, np.random.default_rng(0))  # no clip has both answers: yes and no alike
    assert Counter(qa.answer for qa in fallback) == {True: 1, False: 1}


def test_eval_split_independent_of_training_parameters(ds, tmp_path):
    """The evaluation split draws from its own random stream: more training videos or more training questions
    per video leave every evaluation file byte-identical (before, the training draws moved the eval choice)."""
    other = _quick(tmp_path / "more", n_train_videos=QUICK["n_train_videos"] + 3, train_questions_per_video=12)
    assert _load(other.anno["stage4"]) != _load(ds.anno["stage4"])
    assert [p.read_bytes() for p in other.eval_configs.values()] == [p.read_bytes() for p in ds.eval_configs.values()]
    assert (other.videos_eval / "eval_0002.mp4").read_bytes() == (ds.videos_eval / "eval_0002.mp4").read_bytes()


def test_family_weights_multiply_a_family_and_leave_the_rest(ds, tmp_path):
    """``family_weights`` adds (w − 1) × per-family balanced questions of that family, drawn after the other
    multiple-choice records: those are all still there and only that family's records are added (the yes/no
    records are drawn against the same per-video load, so they may move; their number does not)."""
    plain = _quick(tmp_path / "unweighted", family_weights=())

    def mc(paths) -> Counter:
        records = [r for r in _load(paths.anno["stage4"]) if not r["id"].startswith("yesno_")]
        return Counter(json.dumps([r["video"], r["end"], r["conversations"]]) for r in records)

    assert _load(plain.manifest)["counts"]["stage4_yes_no"] == _load(ds.manifest)["counts"]["stage4_yes_no"]

    base, weighted = mc(plain), mc(ds)
    assert not base - weighted
    added = [json.loads(k)[2][0]["value"] for k in (weighted - base).elements()]
    assert len(added) == _load(ds.manifest)["counts"]["stage4_online_mc_weighted"] > 0
    assert all(Q.FAMILIES["object_kind"].template.format(side="left") in q or
               Q.FAMILIES["object_kind"].template.format(side="right") in q for q in added)  # fmt: skip
    letters = Counter(json.loads(k)[2][1]["value"] for k in (weighted - base).elements())
    assert max(letters.values()) - min(letters.values()) <= 1 and set(letters) == {"A", "B", "C"}  # balanced answers
