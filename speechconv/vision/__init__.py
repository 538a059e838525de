"""The image-task counterparts, built on the same conv-pool core (:mod:`speechconv.blocks`): LeNet-5,
AlexNet/ZFNet, VGG, GoogLeNet and ResNet-style nets and a neocognitron (:mod:`.models`, registered in
:mod:`speechconv.models` like the audio models), the image-only blocks they need (:mod:`.blocks`: 2-D
spatial conv-pool helpers, neocognitron S/C layers, Hebbian learning) and image augmentation
(:mod:`.augment`: one random affine warp per image)."""
