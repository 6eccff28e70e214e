"""TTS engines. Each engine module is imported only when its engine is built, so its heavy
dependencies (onnxruntime, torch) never load in a process that does not use them. Engines know
nothing of the application's settings: the registry (``function.registry``) gives them what they need."""
