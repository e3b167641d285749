"""Experiment cards: a run's log round-trips through one file; foreign or damaged files get one clear message."""

import base64
import json

import pytest

from genmodels.cards import CardError, make_card, read_card
from genmodels.logs import grid_images
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_metrics

LOGS = REPO_ROOT / "checkpoints" / "mnist" / "logs"


def shipped_gan_card():
    grids = {epoch: path.read_bytes() for epoch, path in grid_images(LOGS / "gan_grids").items()}
    config = json.loads((LOGS / "gan.config.json").read_text())
    return make_card("shipped-gan", "gan", "mnist", config, read_metrics(LOGS / "gan.jsonl"), grids)


def test_a_shipped_log_round_trips_through_its_card():
    card = shipped_gan_card()
    back = read_card(card.to_json())
    assert back.records == card.records and back.config == card.config and back.grid_png == card.grid_png
    assert back.grid_epoch == max(grid_images(LOGS / "gan_grids")) and back.seed == card.seed is not None
    assert back.final_metrics["type"] in ("epoch", "final") and back.alerts == []
    assert "python" in back.environment


def tamper(**changes):
    payload = json.loads(shipped_gan_card().to_json())
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n not json", "not JSON"),
        (b'{"hello": 1}', "not an experiment card"),
        (b"[1, 2]", "not an experiment card"),
        (tamper(version=7), "card version 7"),
        (tamper(kind="diffusion"), "unknown model kind 'diffusion'"),
        (tamper(dataset="cifar"), "unknown dataset 'cifar'"),
        (tamper(records={"a": 1}), "metrics log is not a list"),
        (tamper(grid_png="***"), "not base64"),
        (tamper(grid_png=base64.b64encode(b"GIF89a....").decode()), "not a PNG"),
        (b" " * 20_000_001, "a card is at most 20 MB"),
    ],
)
def test_bad_cards_are_refused_with_one_message(data, message):
    with pytest.raises(CardError, match=message):
        read_card(data)
