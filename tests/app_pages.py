"""Helpers shared by the AppTest page tests: open a page file with a seeded dataset, check it rendered cleanly."""

import contextlib
import html

import streamlit as st
from streamlit.testing.v1 import AppTest

from genmodels.paths import REPO_ROOT


def open_page(name: str, dataset: str = "mnist", timeout: int = 120, **state) -> AppTest:
    """Run views/<name>.py once with st.session_state['dataset'] (and any other keys) seeded."""
    at = AppTest.from_file(str(REPO_ROOT / "views" / f"{name}.py"), default_timeout=timeout)
    at.session_state["dataset"] = dataset
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def rendered_cleanly(at: AppTest) -> AppTest:
    """Assert the run raised nothing and showed no error box; returns the AppTest for chaining."""
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@contextlib.contextmanager
def checkpoints_at(folder, monkeypatch):
    """Point the app at another checkpoints folder, with Streamlit's caches empty before and after."""
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(folder))
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def figure_rows(at: AppTest) -> list[list[tuple[str, str]]]:
    """The rows of inline figures (views.common.figure_row) on the page, each a list of (image src, caption)."""
    import re

    figure = re.compile(r'<img alt="[^"]*" src="([^"]+)"><figcaption[^>]*>([^<]*)</figcaption>')
    return [
        [(src, html.unescape(caption)) for src, caption in figure.findall(element.value)]
        for element in at.markdown
        if "<figure" in element.value
    ]
