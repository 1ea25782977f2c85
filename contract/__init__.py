"""The contract shared by training (which writes the model repository) and serving (which
reads it): repository naming rules, the ``model.json`` schema and the image preprocessing.

Imports numpy and Pillow only: no TensorFlow, no gRPC, nothing of ``service`` or
``training`` (``tests/contract/test_isolation.py`` enforces it), so decoding an image for
training never pulls in a server.
"""
