"""Audio: tempo, resampling and streaming encoders (PyAV)."""
