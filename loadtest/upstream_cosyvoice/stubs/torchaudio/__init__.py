"""Stand-in for torchaudio (parity tests and the CosyVoice benchmark only).

torchaudio has no wheel for the local torch build. Upstream CosyVoice imports it at module level
(feature extraction and resampling for prompt audio) but never calls it on the SFT inference path
the parity tests exercise, so an importable empty module is enough. Never used by function/.
"""
