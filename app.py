"""genmodels studio: the entry point; run with `streamlit run app.py`.

Nothing here or in the sidebar imports PyTorch, so the frame and the page's heading show while it loads (2-3 s).
"""
import streamlit as st

from genmodels.memory import return_large_frees_to_the_os
from pages import sidebar

return_large_frees_to_the_os()  # before PyTorch loads; idempotent: keeps big temporaries from staying resident

st.set_page_config(page_title="genmodels studio", page_icon=":material/auto_awesome:", layout="wide")

navigation = st.navigation([
    st.Page("pages/sample.py", title="Sample", icon=":material/draw:", default=True),
    st.Page("pages/latent_space.py", title="Latent space", icon=":material/scatter_plot:"),
    st.Page("pages/gan_vs_vae.py", title="GAN vs VAE", icon=":material/compare:"),
    st.Page("pages/training.py", title="Training", icon=":material/monitoring:"),
    st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
])
sidebar.render()
navigation.run()
