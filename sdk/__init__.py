"""xinfeng SDK: SM2/SM3/SM4, the envelope protocol and the integrator helper.

Imports nothing outside the standard library and msgpack, so the same code
runs on the server's CPython and in the component's Pyodide.
"""
