"""The studio's views (thin Streamlit pages); `PAGES` lists them once, in navigation order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIEWS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class View:
    """One page of the app: its file stem in views/, its title and its Material icon."""

    name: str
    title: str
    icon: str

    @property
    def path(self) -> Path:
        return VIEWS_DIR / f"{self.name}.py"


PAGES = (
    View("sample", "Sample", ":material/draw:"),
    View("latent_space", "Latent space", ":material/scatter_plot:"),
    View("gan_vs_vae", "GAN vs VAE", ":material/compare:"),
    View("your_image", "Your image", ":material/gesture:"),
    View("training", "Training", ":material/monitoring:"),
    View("data", "Data", ":material/dataset:"),
)
PAGE_PATHS = {view.name: view.path for view in PAGES}  # st.switch_page and st.page_link take these
