"""The paper's theory, computed: BN from first principles (`bn`), both sides of the Section 4 results on any layer of
a `bnopt` model (`section4`), and Lemma 4.5 in the one-neuron model (`lemma45`). Every name is gathered here."""
from bnopt.theory.bn import batch_norm, bn_autograd
from bnopt.theory.lemma45 import (OneNeuron, lemma45_gap, lemma45_random_inits, lemma45_sides, lemma45_sweep,
                                  line_angle, random_one_neuron)
from bnopt.theory.section4 import (LayerGradients, bn_twin, layer_gradients, observation43, theorem41, theorem42,
                                   theorem44, theorem44_at_input, weight_gradient_at_input, weight_layer_input_matrix)

__all__ = ["batch_norm", "bn_autograd", "LayerGradients", "layer_gradients", "theorem41", "theorem42", "theorem44",
           "weight_layer_input_matrix", "weight_gradient_at_input", "theorem44_at_input", "bn_twin", "observation43",
           "OneNeuron", "lemma45_gap", "lemma45_sides", "lemma45_random_inits", "random_one_neuron", "lemma45_sweep",
           "line_angle"]
