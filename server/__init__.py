"""The Starlette middle tier."""
