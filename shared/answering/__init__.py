"""Answering: prompts, generation, citations and chat sessions."""
