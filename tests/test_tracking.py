"""finetune.log_with: tensorboard sends the training curve to TensorBoard (accelerate's tracker); csv does not."""

from __future__ import annotations

import csv

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from selfteach.finetune import TRACKING_DIR, TRACKING_RUN
from test_finetune import p3_style_text, run_train


def test_tensorboard_events_hold_the_csv_curve(tiny_model_dir, tmp_path):
    summary = run_train(tmp_path, tiny_model_dir, p3_style_text(24), log_with="tensorboard")
    with open(tmp_path / "log.csv", newline="") as log:
        rows = list(csv.DictReader(log))  # the CSV stays
    events = EventAccumulator(str(tmp_path / TRACKING_DIR / TRACKING_RUN))
    events.Reload()
    assert {"loss", "lr", "tokens_per_s"} <= set(events.Tags()["scalars"])
    for tag, column in (("loss", "loss"), ("lr", "lr")):
        points = events.Scalars(tag)
        assert [p.step for p in points] == [int(row["step"]) for row in rows] == list(range(1, summary["steps"] + 1))
        assert [p.value for p in points] == pytest.approx([float(row[column]) for row in rows], rel=1e-5)
    assert all(p.value > 0 for p in events.Scalars("tokens_per_s"))


def test_the_default_writes_the_csv_and_no_events(tiny_model_dir, tmp_path):
    run_train(tmp_path, tiny_model_dir, p3_style_text(8), epochs=1)
    assert (tmp_path / "log.csv").exists() and not (tmp_path / TRACKING_DIR).exists()
