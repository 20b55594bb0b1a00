"""HTML layer: tokenizing mail HTML, finding remote references (including in CSS) with exact offsets."""
