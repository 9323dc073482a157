"""Circuit School utilities: devices, checking, notebook extraction, the chapter build and model loading."""
