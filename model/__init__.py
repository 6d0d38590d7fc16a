"""The model side: the chat-completions client, its retries and failures, the context
window, reasoning text."""
