"""Evaluation of a knowledge base on a question set: questions, metrics, runs, comparisons."""
