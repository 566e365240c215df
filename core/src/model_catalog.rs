//! The bundled catalog of widely used open models (data in `core/data/models.json`).
