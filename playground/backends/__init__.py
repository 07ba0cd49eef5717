"""Backends behind one small protocol: the local llama.cpp engine and remote HTTP servers."""
