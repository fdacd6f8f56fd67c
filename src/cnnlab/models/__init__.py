"""Model zoo: cnnlab's own CNNs and every timm model behind one ``create_model`` verb.

Import from the submodules (``cnnlab.models.registry`` and friends); this package module stays
empty so that importing it does not pull in torch.
"""
