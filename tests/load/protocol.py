"""A Streamlit session without a browser: it speaks the app's websocket protocol, as the front end does, and fetches
the images it is sent, but renders nothing.

The load test uses it to put a classroom's load on the server while the students' rendering stays off the machine
it measures, as it does in a classroom (each student's browser runs on their own laptop). Streamlit has no client
library of its own; the messages are its protobufs (`streamlit.proto`), the transport the `websockets` package.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ERROR_ALERT = 1  # streamlit.proto.Alert.Format.ERROR


@dataclass
class Run:
    """What one script run sent: its image URLs in order, the errors it showed, and when it ended."""

    images: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    image_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class ProtocolSession:
    """One Streamlit session over the websocket: open the app, switch pages, press buttons, move sliders; each
    action returns the seconds a visitor would wait (until the run's first image was fetched, or the page's script
    run ended)."""

    def __init__(self, url: str):
        self.http = url.rstrip("/")
        self.ws_url = self.http.replace("http", "ws", 1) + "/_stcore/stream"
        self.pages: dict[str, str] = {}  # page title -> page_script_hash
        self.page_hash = ""
        self.widgets: dict[str, object] = {}  # label -> the widget's element proto, on the current page
        self.values: dict[str, float] = {}  # label -> the value this session moved a slider to (the server keeps it)
        self.run: Run | None = None
        self.refreshers: list[asyncio.Task] = []
        self.errors: list[str] = []

    async def open(self, page: str | None = None) -> float:
        """Connect and run the app's first page (or `page`); seconds until its first image was fetched."""
        self.socket = await websockets.connect(
            self.ws_url, subprotocols=["streamlit"], origin=self.http, max_size=None, ping_interval=None
        )
        self.reader = asyncio.create_task(self._read())
        return await self._action(self._rerun(), wait_for_image=page is None)

    async def go_to(self, title: str) -> float:
        """Switch to the page titled `title`; seconds until its script run ended."""
        self.page_hash = self.pages[title]
        self.widgets = {}
        return await self._action(self._rerun(), wait_for_image=False)

    async def press(self, label: str) -> float:
        """Press the button labelled `label`; seconds until the run's first image was fetched."""
        state = WidgetState(id=self.widgets[label].id, trigger_value=True)
        return await self._action(self._rerun([state]), wait_for_image=True)

    async def nudge(self, label: str, direction: int) -> float:
        """Move the slider labelled `label` one step (direction +1 or -1, bounced at its ends); seconds until the
        run's first image was fetched."""
        slider = self.widgets[label]
        value = self.values.setdefault(label, (slider.value if slider.set_value else slider.default)[0])
        moved = value + direction * slider.step
        if not slider.min <= moved <= slider.max:
            moved = value - direction * slider.step
        self.values[label] = moved
        state = WidgetState(id=slider.id)
        state.double_array_value.data.append(moved)
        return await self._action(self._rerun([state]), wait_for_image=True)

    async def settle(self) -> None:
        """Until the running script run ended."""
        if self.run is not None:
            await self.run.finished.wait()

    async def close(self) -> None:
        for task in (*self.refreshers, getattr(self, "reader", None)):
            if task is not None:
                task.cancel()
        if hasattr(self, "socket"):
            await self.socket.close()

    async def _action(self, send, wait_for_image: bool) -> float:
        started = time.perf_counter()
        self.run = Run()
        await send
        run = self.run
        if wait_for_image:
            await run.image_arrived.wait()
            if run.images:
                await asyncio.to_thread(self._fetch, run.images[0])
            else:
                run.errors.append("the run showed no image")
        else:
            await run.finished.wait()
        self.errors += run.errors
        return time.perf_counter() - started

    def _client_state(self, msg: BackMsg, widgets: list[WidgetState], fragment_id: str = "") -> None:
        state = msg.rerun_script
        state.query_string = ""
        state.page_script_hash = self.page_hash
        state.widget_states.widgets.extend(widgets)
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = True

    async def _rerun(self, widgets: list[WidgetState] = ()) -> None:
        for task in self.refreshers:  # a full run re-registers the page's live fragments
            task.cancel()
        self.refreshers = []
        msg = BackMsg()
        self._client_state(msg, list(widgets))
        await self.socket.send(msg.SerializeToString())

    async def _refresh(self, fragment_id: str, interval_s: float) -> None:
        """Re-run a live fragment every interval_s, as the front end does for `st.fragment(run_every=...)`."""
        while True:
            await asyncio.sleep(interval_s)
            msg = BackMsg()
            self._client_state(msg, [], fragment_id)
            await self.socket.send(msg.SerializeToString())

    def _fetch(self, path: str) -> None:
        with urllib.request.urlopen(self.http + path, timeout=60) as response:
            response.read()

    async def _read(self) -> None:
        async for raw in self.socket:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                self.pages = {page.page_name: page.page_script_hash for page in msg.navigation.app_pages}
                self.page_hash = self.page_hash or msg.navigation.page_script_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._element(msg.delta.new_element)
            elif kind == "auto_rerun":
                rerun = msg.auto_rerun
                self.refreshers.append(asyncio.create_task(self._refresh(rerun.fragment_id, rerun.interval)))
            elif kind == "script_finished" and self.run is not None:
                if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    self.run.image_arrived.set()  # a run that drew no image: nothing more to wait for
                    self.run.finished.set()
                elif msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    self.run.errors.append("the script failed to compile")
                    self.run.image_arrived.set()
                    self.run.finished.set()

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        run = self.run
        if kind in ("button", "slider"):
            self.widgets[getattr(element, kind).label] = getattr(element, kind)
        elif kind == "imgs" and run is not None:
            run.images += [image.url for image in element.imgs.imgs]
            run.image_arrived.set()
        elif kind == "exception" and run is not None:
            run.errors.append(element.exception.message[:300])
        elif kind == "alert" and element.alert.format == ERROR_ALERT and run is not None:
            run.errors.append(element.alert.body[:300])
