"""The conversation: each channel's turns and answers, summaries, settings per
channel, who is answered and their limits, usage."""
