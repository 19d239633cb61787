"""Licenses, embed tokens and the product registry."""
