"""serverless-tts: a text-to-speech function for serverless platforms."""
