"""GC-state GRU: per-base H/L state log-probabilities from DNA tokens (seed 002, batch-first)."""
import torch


class GCStateGRU(torch.nn.Module):
    """Embedding -> GRU -> Linear -> LogSoftmax over the hidden states.

    Parameters
    ----------
    n_tokens : int, optional
        Vocabulary size (4: A=0, C=1, G=2, T=3). Default 4.
    embed_size : int, optional
        Embedding width. Default 8.
    hidden_size : int, optional
        GRU hidden units per direction. Default 32.
    n_layers : int, optional
        Stacked GRU layers. Default 1.
    bidirectional : bool, optional
        Read the sequence in both directions; the HMM posterior of a base
        depends on both sides, so this is what per-base decoding needs.
        Default True.
    n_states : int, optional
        Output classes (2: H=0, L=1). Default 2.

    Shapes
    ------
    input ``seq``: ``(N, L)`` tokens. Any dtype holding integral values is
    accepted (tangermeme-style ``predict`` casts every input to the model's
    float dtype), so tokens are rounded and cast to int64 here.
    output: ``(N, L, n_states)`` per-base log-probabilities.
    """

    def __init__(self, n_tokens=4, embed_size=8, hidden_size=32, n_layers=1,
                 bidirectional=True, n_states=2):
        super().__init__()
        self.embedding = torch.nn.Embedding(n_tokens, embed_size)
        self.gru = torch.nn.GRU(embed_size, hidden_size, num_layers=n_layers,
                                bidirectional=bidirectional, batch_first=True)
        self.lin_out = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), n_states)
        self.log_softmax = torch.nn.LogSoftmax(dim=-1)

    def forward(self, seq):
        if seq.is_floating_point():
            seq = seq.round()
        h, _ = self.gru(self.embedding(seq.long()))
        return self.log_softmax(self.lin_out(h))
