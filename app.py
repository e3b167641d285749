"""genmodels studio: the entry point; run with `streamlit run app.py`.

Nothing here or in the sidebar imports PyTorch, so the frame and the page's heading show while it loads (2-3 s).
The views live in views/, a folder Streamlit does not scan, so every link or reload opens inside this frame.
"""

import streamlit as st

from genmodels.memory import return_large_frees_to_the_os
from views import PAGES, common, sidebar

return_large_frees_to_the_os()  # before PyTorch loads; idempotent: keeps big temporaries from staying resident

st.set_page_config(page_title="genmodels studio", page_icon=":material/auto_awesome:", layout="wide")

navigation = st.navigation(
    [st.Page(view.path, title=view.title, icon=view.icon, default=i == 0) for i, view in enumerate(PAGES)]
)
try:
    sidebar.render(navigation.run)
finally:  # after the first page was drawn (or stopped): the models and shared numbers load in the background
    common.start_preload()
