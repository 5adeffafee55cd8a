"""Annotation mode: the controller, its drawing tools, the class picker and the annotations layer."""
