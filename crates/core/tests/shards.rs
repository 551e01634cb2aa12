//! Data-parallel training on the fused CPU path (`crates/core/src/shards.rs`): a step's batch cut
//! into shards whose gradients are summed in order gives the same weights bit for bit whether the
//! shards run here or on pool workers (or on workers that fail), matches the Burn path's step,
//! and a worker refuses tasks that do not fit its network.

use std::cell::RefCell;

use convlens_core::cpu_train::CpuTrainer;
use convlens_core::layers::dropout::{dropout_mask, dropout_mask_from};
use convlens_core::rng::SplitMix64;
use convlens_core::shards::{self, Pending, ShardOut, ShardPool, ShardTask};
use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Method, Optimizer, TrainConfig};
use convlens_core::{Error, Net};

/// A conv net big enough to be cut (over shards::MIN_MACS per example), with dropout.
const DROPOUT_SPEC: &str = r#"{"layers":[{"type":"input","width":20,"height":20,"depth":2},
  {"type":"conv","size":5,"filters":8,"pad":2,"activation":"relu"},{"type":"dropout","rate":0.4},
  {"type":"pool","size":2,"stride":2},{"type":"conv","size":3,"filters":6,"activation":"tanh"},
  {"type":"fc","units":5},{"type":"softmax"}]}"#;

/// Pool workers in this process: each a trainer of its own (its weights come with each task), or
/// failing ones.
struct Workers {
    trainers: Vec<RefCell<CpuTrainer>>,
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Work,
    Fail,
    /// Answers with one gradient too few.
    Short,
}

impl ShardPool for Workers {
    fn workers(&self) -> usize {
        self.trainers.len()
    }
    fn run(&self, worker: usize, task: ShardTask) -> Pending {
        let r = match self.mode {
            Mode::Fail => Err(Error::Input("the worker is gone".into())),
            _ => self.trainers[worker].borrow_mut().shard_grads(&task),
        };
        let r = r.map(|mut out: ShardOut| {
            if self.mode == Mode::Short {
                out.grads.pop();
            }
            out
        });
        Box::pin(std::future::ready(r))
    }
}

fn batch(spec: &NetSpec, n: usize, rng: &mut SplitMix64) -> (Vec<f32>, Vec<usize>) {
    let size: usize = spec.input_shape().iter().product();
    let x = (0..n * size).map(|_| rng.range(-1.0, 1.5) as f32).collect();
    let y = (0..n).map(|_| rng.below(spec.classes())).collect();
    (x, y)
}

fn trainer(spec: &NetSpec, seed: u64, config: TrainConfig) -> (Net, CpuTrainer) {
    let net = Net::init(spec.clone(), seed, &convlens_core::backend::cpu());
    let w = pollster::block_on(net.read_weights()).unwrap();
    let t = CpuTrainer::new(&net, w, config);
    (net, t)
}

#[test]
fn a_shards_dropout_mask_is_its_part_of_the_batchs() {
    let whole = dropout_mask(7, 3, 2, 0.4, 6, 50);
    for (from, count) in [(0, 300), (50, 100), (173, 127), (299, 1)] {
        assert_eq!(dropout_mask_from(7, 3, 2, 0.4, from, count), whole[from..from + count]);
    }
}

#[test]
fn the_cut_depends_on_the_net_and_the_batch_only() {
    let mnist = NetSpec::parse(convlens_core::spec::MNIST_SPEC).unwrap();
    assert!(shards::macs(&mnist) > shards::MIN_MACS, "{}", shards::macs(&mnist));
    assert_eq!(shards::plan(&mnist, 20), vec![0..10, 10..20]);
    assert_eq!(shards::plan(&mnist, 19), vec![0..19]);
    assert_eq!(shards::plan(&mnist, 35), vec![0..12, 12..24, 24..35]);
    assert_eq!(shards::plan(&mnist, 4096).len(), shards::MAX_SHARDS);
    // A toy net (the messages would cost more than the work) and a net with batchnorm stay whole.
    let toy = NetSpec::parse(r#"{"layers":[{"type":"input","width":1,"height":1,"depth":2},{"type":"fc","units":8,"activation":"tanh"},{"type":"fc","units":2},{"type":"softmax"}]}"#).unwrap();
    assert_eq!(shards::plan(&toy, 100).len(), 1);
    let bn = NetSpec::parse(r#"{"layers":[{"type":"input","width":28,"height":28,"depth":1},{"type":"conv","size":5,"filters":8,"bias":false},{"type":"batchnorm"},{"type":"relu"},{"type":"fc","units":10},{"type":"softmax"}]}"#).unwrap();
    assert!(shards::macs(&bn) > shards::MIN_MACS);
    assert_eq!(shards::plan(&bn, 100).len(), 1);
}

#[test]
fn one_worker_and_many_give_the_same_weights_bit_for_bit() {
    for text in [convlens_core::spec::MNIST_SPEC, DROPOUT_SPEC] {
        let spec = NetSpec::parse(text).unwrap();
        for method in [Method::Momentum, Method::Adam] {
            let config = TrainConfig { method, learning_rate: 0.01, momentum: 0.9, l2: 0.001, batch_size: 40, ..Default::default() };
            let mut rng = SplitMix64(5);
            let batches: Vec<_> = (0..3).map(|_| batch(&spec, 40, &mut rng)).collect();
            assert_eq!(shards::plan(&spec, 40).len(), 4);
            let (_, mut alone) = trainer(&spec, 1, config);
            let (reference, _) = alone.train_chunk(&batches, &|| 0.0).unwrap();
            for (workers, mode) in [(1, Mode::Work), (3, Mode::Work), (7, Mode::Work), (2, Mode::Fail), (1, Mode::Short)] {
                let (_, mut main) = trainer(&spec, 1, config);
                // The workers start from other weights: each task brings the step's.
                let pool =
                    Workers { trainers: (0..workers).map(|k| RefCell::new(trainer(&spec, 10 + k as u64, config).1)).collect(), mode };
                let (stats, _) = pollster::block_on(main.train_chunk_with(&batches, &|| 0.0, Some(&pool))).unwrap();
                let what = format!("{} with {workers} workers", method.as_str());
                assert_eq!(stats.losses, reference.losses, "{what}: losses");
                assert_eq!(stats.correct, reference.correct, "{what}: correct");
                assert!(main.weights == alone.weights, "{what}: the weights differ");
                assert_eq!(stats.pooled > 0, mode == Mode::Work, "{what}: {} shards on the workers", stats.pooled);
            }
        }
    }
}

#[test]
fn a_cut_step_matches_the_burn_paths_whole_batch() {
    for (si, text) in [convlens_core::spec::MNIST_SPEC, DROPOUT_SPEC].into_iter().enumerate() {
        let spec = NetSpec::parse(text).unwrap();
        let config =
            TrainConfig { method: Method::Momentum, learning_rate: 0.05, momentum: 0.9, l2: 0.01, batch_size: 25, ..Default::default() };
        assert_eq!(shards::plan(&spec, 25).len(), 2);
        let (mut burn_net, mut fast) = trainer(&spec, 3, config);
        let mut opt = Optimizer::new(&burn_net, config);
        let mut rng = SplitMix64(11);
        let batches: Vec<_> = (0..3).map(|_| batch(&spec, 25, &mut rng)).collect();
        let (a, _) = pollster::block_on(train::train_chunk(&mut burn_net, &mut opt, &batches, &|| 0.0)).unwrap();
        let pool = Workers { trainers: vec![RefCell::new(trainer(&spec, 4, config).1)], mode: Mode::Work };
        let (b, _) = pollster::block_on(fast.train_chunk_with(&batches, &|| 0.0, Some(&pool))).unwrap();
        assert_eq!(a.correct, b.correct, "spec {si}");
        for (x, y) in a.losses.iter().zip(&b.losses) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "spec {si}: losses {:?} vs {:?}", a.losses, b.losses);
        }
        let wa = pollster::block_on(burn_net.read_weights()).unwrap();
        let worst = wa
            .iter()
            .flatten()
            .flatten()
            .zip(fast.weights.iter().flatten().flatten())
            .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
            .fold(0f32, f32::max);
        assert!(worst < 2e-5, "spec {si}: weights differ by {worst}");
    }
}

#[test]
fn a_worker_refuses_tasks_that_do_not_fit_its_network() {
    let spec = NetSpec::parse(convlens_core::spec::MNIST_SPEC).unwrap();
    let config = TrainConfig::default();
    let (_, mut t) = trainer(&spec, 1, config);
    let params: usize = t.weights.iter().flatten().map(Vec::len).sum();
    let per: usize = spec.input_shape().iter().product();
    let mut rng = SplitMix64(2);
    let (images, labels) = batch(&spec, 10, &mut rng);
    let good = ShardTask {
        net: shards::fingerprint(&spec),
        weights: vec![0.01; params],
        images,
        labels,
        shards: vec![10..15, 15..20],
        batch: 20,
        seed: 1,
        step: 0,
    };
    let out = t.shard_grads(&good).unwrap();
    assert!(out.fits(2, params));
    let other = NetSpec::parse(DROPOUT_SPEC).unwrap();
    let bad = [
        ShardTask { net: shards::fingerprint(&other), ..good.clone() },
        ShardTask { weights: vec![0.0; params - 1], ..good.clone() },
        ShardTask { labels: vec![10; 10], ..good.clone() },
        ShardTask { shards: vec![10..15, 16..20], ..good.clone() },
        ShardTask { shards: vec![10..15, 15..21], batch: 20, ..good.clone() },
        ShardTask { images: vec![0.0; 9 * per], ..good.clone() },
        ShardTask { shards: vec![], ..good.clone() },
    ];
    for (k, task) in bad.iter().enumerate() {
        assert!(matches!(t.shard_grads(task), Err(Error::Input(_))), "bad task {k} was taken");
    }
}
