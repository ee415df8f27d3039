"""The studio in the browser: Gradio Blocks over the same services as the API."""
