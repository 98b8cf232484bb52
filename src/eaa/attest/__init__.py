"""Attesters: produce evidence bound to caller-chosen report data."""
