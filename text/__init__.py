"""Text logic with no Discord or network in it: tokens, splitting, control text,
attachments to text."""
