"""The component: Python that runs in Pyodide inside the container Worker."""
