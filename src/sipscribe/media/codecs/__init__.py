"""media/codecs layer."""
