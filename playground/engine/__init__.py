"""The local llama.cpp engine: model loading, the decode loop and per-token probabilities.

Heavy imports (``llama_cpp``) happen inside these modules, so importing ``playground`` stays light.
"""
