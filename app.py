"""genmodels studio: the entry point; run with `streamlit run app.py`.

Nothing here or in the sidebar imports PyTorch, so the frame and the page's heading show while it loads (2-3 s).
"""
import streamlit as st

from genmodels.memory import return_large_frees_to_the_os
from pages import sidebar
from pages.common import DEEP_LINK_KEY, FRAMED_KEY

return_large_frees_to_the_os()  # before PyTorch loads; idempotent: keeps big temporaries from staying resident

st.set_page_config(page_title="genmodels studio", page_icon=":material/auto_awesome:", layout="wide")

pages = {
    "sample": st.Page("pages/sample.py", title="Sample", icon=":material/draw:", default=True),
    "latent_space": st.Page("pages/latent_space.py", title="Latent space", icon=":material/scatter_plot:"),
    "gan_vs_vae": st.Page("pages/gan_vs_vae.py", title="GAN vs VAE", icon=":material/compare:"),
    "your_image": st.Page("pages/your_image.py", title="Your image", icon=":material/gesture:"),
    "training": st.Page("pages/training.py", title="Training", icon=":material/monitoring:"),
    "data": st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
}
navigation = st.navigation(list(pages.values()))
st.session_state[FRAMED_KEY] = True
linked = st.session_state.pop(DEEP_LINK_KEY, None)
if linked in pages:  # a page Streamlit first ran on its own (see pages.common.require_frame), now inside the frame
    st.switch_page(pages[linked])
sidebar.render()
navigation.run()
