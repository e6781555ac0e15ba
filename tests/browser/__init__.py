"""Real-browser tests: a real JupyterLab server driven by headless Chromium through Playwright."""
