"""Training: self-play (``selfplay``), the replay window (``replay``), the trainer (``trainer``), where self-play
plays (``backends``: this process, local processes; ``distributed``: Ray actors) and the run that ties them
(``loop``). Imports play (matches for Elo and gating), the engine and below."""
