"""`nbops registry list|history`, `nbops promote`, `nbops rollback`: model versions and their
aliases (production, staging, ...), every change recorded with who, when and why."""
