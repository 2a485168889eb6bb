"""Array operations shared by the network and the crops: PyTorch-convention resizing."""
