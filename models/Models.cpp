// The registry of built-in models: one line per model, by the name a spec uses in model.name.
#include "framework/train/Model.h"
#include "models/classifier/DomainClassifier.h"
#include "models/pgan/Pgan.h"
#include "models/pixelrnn/PixelRnn.h"
#include "models/stargan/StarGan.h"
#include "models/vae/Vae.h"

namespace gentrain {

void registerBuiltinModels() {
  ModelRegistry& registry = ModelRegistry::instance();
  registry.add("domain_classifier",
               {"a CNN classifying images into the domains of attribute columns (StarGAN's "
                "evaluation classifier); test accuracy",
                &models::DomainClassifier::addKeys,
                [] { return std::make_unique<models::DomainClassifier>(); }});
  registry.add("pgan", {"Progressive GAN (Karras et al. 2018): growing generator and critic, "
                        "WGAN-GP, generator moving average; sliced Wasserstein distance",
                        &models::Pgan::addKeys, [] { return std::make_unique<models::Pgan>(); }});
  registry.add("pixelrnn", {"PixelRNN (van den Oord et al. 2016): Diagonal BiLSTM, Row LSTM or "
                            "PixelCNN; exact test NLL (nats, bits/dim), pixel-by-pixel samples",
                            &models::PixelRnn::addKeys,
                            [] { return std::make_unique<models::PixelRnn>(); }});
  registry.add("stargan", {"StarGAN (Choi et al. 2018): one generator translating between the "
                           "domains of attribute columns; classifier accuracy, cycle L1",
                           &models::StarGan::addKeys,
                           [] { return std::make_unique<models::StarGan>(); }});
  registry.add("vae", {"variational autoencoder (Kingma & Welling), MLP or convolutional, "
                       "Bernoulli decoder; test ELBO and importance-weighted log-likelihood",
                       &models::Vae::addKeys, [] { return std::make_unique<models::Vae>(); }});
}

}  // namespace gentrain
