"""The live KPI dashboard (Streamlit): `make dashboard`."""
