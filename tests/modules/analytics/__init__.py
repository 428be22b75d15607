"""Tests of the analytics module."""
