"""Who must approve which call, who may decide it, and the cards and clicks that decide."""
