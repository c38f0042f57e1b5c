"""Learned codecs (CompressAI zoo, ELIC, HiFiC, embedded tiny codecs). Filled in by issue 3."""
