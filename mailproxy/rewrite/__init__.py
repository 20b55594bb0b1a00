"""Length-preserving rewriting of message parts.

``edits`` turns decisions about references into edits of the decoded text, ``transfer`` carries
those edits through the part's content-transfer-encoding without changing its length or line
count, and ``safety`` checks the result with an independent parser.
"""
