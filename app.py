"""The vkpp-learning web app: a thin router. Pages live in vkpp_learning/app_pages/ and call the library.

Run it with `vkpp app` (which passes the database URL), or `streamlit run app.py` (VKPP_DATABASE_URL).
"""

import streamlit as st

from vkpp_learning.app_pages import navigation_pages
from vkpp_learning.app_pages.common import start

start()  # page settings, the signed-in user (or local mode) and the sidebar
st.navigation(navigation_pages()).run()
