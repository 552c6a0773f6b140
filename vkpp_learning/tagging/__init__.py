"""Taggers: rules over the taxonomy's phrases, detectors for missed opportunities, agencies and recommendations."""
