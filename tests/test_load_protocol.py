"""The load test's browserless client against a real Streamlit server running a two-page toy app."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from tests.load.protocol import ProtocolSession

TOY_APP = """
import numpy as np
import streamlit as st


def samples():
    st.session_state.setdefault("seed", 0)
    st.title("Samples")
    st.button("Re-roll", on_click=lambda: st.session_state.update(seed=st.session_state.seed + 1))
    temperature = st.slider("Truncation / temperature", 0.1, 2.0, 1.0, step=0.1)
    rng = np.random.default_rng(st.session_state.seed)
    st.image((rng.random((8, 8)) * temperature * 120).astype(np.uint8), width=64)
    st.caption(f"seed {st.session_state.seed} temperature {temperature:.1f}")


def broken():
    st.title("Broken")
    raise RuntimeError("this page fails")


st.navigation([st.Page(samples, title="Samples"), st.Page(broken, title="Broken")]).run()
"""


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy.py").write_text(textwrap.dedent(TOY_APP))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", "toy.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    server = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("the toy streamlit app did not come up")
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(20)


def test_protocol_session_opens_presses_slides_switches_and_sees_errors(toy_server):
    async def visit() -> dict:
        session = ProtocolSession(toy_server)
        out = {"open": await session.open()}
        await session.settle()
        first = list(session.run.images)
        out["press"] = await session.press("Re-roll")
        await session.settle()
        rerolled = list(session.run.images)
        out["slide"] = await session.nudge("Truncation / temperature", 1)
        await session.settle()
        out["value"] = session.values["Truncation / temperature"]
        out["clean"] = list(session.errors)
        out["broken"] = await session.go_to("Broken")
        out["errors"] = list(session.errors)
        out["back"] = await session.go_to("Samples")
        await session.close()
        return out | {"pages": list(session.pages), "first": first, "rerolled": rerolled}

    out = asyncio.run(asyncio.wait_for(visit(), 60))
    assert out["pages"] == ["Samples", "Broken"]
    assert out["first"] and out["rerolled"] and out["first"] != out["rerolled"], "a re-roll shows a new image"
    assert out["value"] == pytest.approx(1.1)
    assert out["clean"] == []
    assert any("this page fails" in error for error in out["errors"]), out["errors"]
    assert all(0 < out[step] < 30 for step in ("open", "press", "slide", "broken", "back"))
