package codec

// trellisStep is the Viterbi step the encoder runs (trellisStepGo or an
// assembly version of it).
var trellisStep = trellisStepGo
