"""The Discord side: slash commands, posting answers, permissions, threads, reading
history back, downloading attachments, pacing edits."""
