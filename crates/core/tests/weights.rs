//! Weights on disk: safetensors in PyTorch's names and layouts. A naive reference forward pass
//! written from PyTorch's definitions (Conv2d cross-correlation with weight (out, in, kh, kw),
//! Linear y = x W^T + b with W (out, in), flatten in (C, H, W) order) reads the file the engine
//! wrote and must give the engine's numbers.

use convlens_core::spec::{MNIST_SPEC, NetSpec};
use convlens_core::vis::layers;
use convlens_core::{Net, Objective, weights};
use safetensors::SafeTensors;

fn tensor(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (t.shape().to_vec(), v)
}

fn conv(x: &[f32], [c, h, w]: [usize; 3], wt: &(Vec<usize>, Vec<f32>), b: &[f32], pad: usize) -> (Vec<f32>, [usize; 3]) {
    let (o, k) = (wt.0[0], wt.0[2]);
    assert_eq!(wt.0[1], c);
    let (oh, ow) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
    let mut y = vec![0f32; o * oh * ow];
    for f in 0..o {
        for i in 0..oh {
            for j in 0..ow {
                let mut s = b[f];
                for ch in 0..c {
                    for u in 0..k {
                        for v in 0..k {
                            let (yy, xx) = (i + u, j + v);
                            if yy < pad || xx < pad || yy - pad >= h || xx - pad >= w {
                                continue;
                            }
                            s += wt.1[((f * c + ch) * k + u) * k + v] * x[(ch * h + yy - pad) * w + xx - pad];
                        }
                    }
                }
                y[(f * oh + i) * ow + j] = s.max(0.0); // relu
            }
        }
    }
    (y, [o, oh, ow])
}

fn maxpool(x: &[f32], [c, h, w]: [usize; 3], k: usize) -> (Vec<f32>, [usize; 3]) {
    let (oh, ow) = (h / k, w / k);
    let mut y = vec![f32::NEG_INFINITY; c * oh * ow];
    for ch in 0..c {
        for i in 0..oh * k {
            for j in 0..ow * k {
                let o = &mut y[(ch * oh + i / k) * ow + j / k];
                *o = o.max(x[(ch * h + i) * w + j]);
            }
        }
    }
    (y, [c, oh, ow])
}

#[test]
fn safetensors_round_trip_in_pytorch_layout_matches_a_reference_forward() {
    let device = convlens_core::backend::cpu();
    let net = Net::init(NetSpec::parse(MNIST_SPEC).unwrap(), 42, &device);
    let w = pollster::block_on(net.read_weights()).unwrap();
    let bytes = weights::save(&net.spec, &w).unwrap();

    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, vec!["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight"]);
    assert_eq!(st.tensor("conv1.weight").unwrap().shape(), &[8, 1, 5, 5]);
    assert_eq!(st.tensor("conv2.weight").unwrap().shape(), &[16, 8, 5, 5]);
    assert_eq!(st.tensor("fc1.weight").unwrap().shape(), &[10, 256]);
    assert_eq!(weights::embedded_spec(&bytes).unwrap().map(|s| NetSpec::parse(&s).unwrap().layers.len()), Some(7));

    // Reload and compare with the reference forward pass.
    let net2 = convlens_core::build(MNIST_SPEC, Some(&bytes), 0, &device).unwrap();
    let image: Vec<f32> = (0..576).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
    let p = pollster::block_on(layers::probe(&net2, &image, &Objective::Class(0))).unwrap();

    let (x, s) = conv(&image, [1, 24, 24], &tensor(&st, "conv1.weight"), &tensor(&st, "conv1.bias").1, 2);
    let (x, s) = maxpool(&x, s, 2);
    let (x, s) = conv(&x, s, &tensor(&st, "conv2.weight"), &tensor(&st, "conv2.bias").1, 2);
    let (x, s) = maxpool(&x, s, 3);
    assert_eq!(s, [16, 4, 4]);
    let (fw, fb) = (tensor(&st, "fc1.weight").1, tensor(&st, "fc1.bias").1);
    let logits: Vec<f32> = (0..10).map(|o| fb[o] + (0..256).map(|i| fw[o * 256 + i] * x[i]).sum::<f32>()).collect();
    for (a, b) in p.layers[4].act.data.iter().zip(&x) {
        assert!((a - b).abs() < 1e-4, "pool2: {a} vs reference {b}");
    }
    for (a, b) in p.layers[5].act.data.iter().zip(&logits) {
        assert!((a - b).abs() < 1e-4, "logits: {a} vs reference {b}");
    }
}

#[test]
fn bad_weight_files_give_clear_messages() {
    let device = convlens_core::backend::cpu();
    let spec = NetSpec::parse(MNIST_SPEC).unwrap();
    let net = Net::init(spec.clone(), 1, &device);
    let w = pollster::block_on(net.read_weights()).unwrap();
    let err = |b: &[u8]| convlens_core::build(MNIST_SPEC, Some(b), 0, &device).err().unwrap().to_string();

    assert!(err(b"garbage").starts_with("weights: not a valid safetensors file"), "{}", err(b"garbage"));
    let good = weights::save(&spec, &w).unwrap();
    assert!(err(&good[..good.len() - 10]).starts_with("weights: not a valid safetensors file"));
    // What is wrong, and which tensor (issue 12): the safetensors crate says "incomplete metadata,
    // file not fully covered" or "invalid shape, data type, or offset for tensor".
    let truncated = err(&good[..good.len() - 10]);
    assert!(truncated.starts_with("weights: not a valid safetensors file: tensor 'fc1."), "{truncated}");
    assert!(truncated.contains("(a truncated file?)"), "{truncated}");
    let mut appended = good.clone();
    appended.extend([0u8; 12]);
    let data = good.len() - 8 - u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    assert_eq!(
        err(&appended),
        format!(
            "weights: not a valid safetensors file: the tensors cover {data} of the {} data bytes (a truncated file, or bytes appended to it)",
            data + 12
        )
    );
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let lie = header.replacen("[8,1,5,5]", "[9,1,5,5]", 1);
    assert_eq!(lie.len(), header.len());
    let mut liar = good[..8].to_vec();
    liar.extend(lie.as_bytes());
    liar.extend(&good[8 + n..]);
    let e = err(&liar);
    assert!(
        e.starts_with("weights: not a valid safetensors file: tensor 'conv1.weight' is F32 [9, 1, 5, 5] (900 bytes) but its data_offsets"),
        "{e}"
    );

    // A file for another architecture.
    let other = NetSpec::parse(&MNIST_SPEC.replace("\"filters\": 8", "\"filters\": 6")).unwrap();
    let onet = Net::init(other.clone(), 1, &device);
    let ow = pollster::block_on(onet.read_weights()).unwrap();
    let obytes = weights::save(&other, &ow).unwrap();
    assert_eq!(err(&obytes), "weights: tensor 'conv1.weight' has shape [6, 1, 5, 5]; layer 1 'conv1' expects [8, 1, 5, 5]");

    // Missing and extra tensors.
    let renamed = NetSpec::parse(&MNIST_SPEC.replace("\"name\": \"fc1\"", "\"name\": \"classifier\"")).unwrap();
    let rbytes = weights::save(&renamed, &w).unwrap();
    assert_eq!(err(&rbytes), "weights: the file has no tensor 'fc1.weight' (expected shape [10, 256] for layer 5 'fc1')");
    let bigger = NetSpec::parse(&MNIST_SPEC.replace(
        "{\"type\": \"softmax\", \"name\": \"softmax\"}",
        "{\"type\": \"fc\", \"name\": \"fc2\", \"units\": 10}, {\"type\": \"softmax\", \"name\": \"softmax\"}",
    ))
    .unwrap();
    let bnet = Net::init(bigger.clone(), 1, &device);
    let bw = pollster::block_on(bnet.read_weights()).unwrap();
    let bbytes = weights::save(&bigger, &bw).unwrap();
    assert_eq!(
        err(&bbytes),
        "weights: the file has tensors this network does not use: fc2.bias, fc2.weight (is it for another architecture?)"
    );
}

#[test]
fn same_seed_same_weights_and_batchnorm_has_pytorch_buffers() {
    let device = convlens_core::backend::cpu();
    let a = pollster::block_on(Net::init(NetSpec::parse(MNIST_SPEC).unwrap(), 5, &device).read_weights()).unwrap();
    let b = pollster::block_on(Net::init(NetSpec::parse(MNIST_SPEC).unwrap(), 5, &device).read_weights()).unwrap();
    assert_eq!(a, b);
    let bn = NetSpec::parse(r#"{"layers":[{"type":"input","width":2,"height":2,"depth":3},{"type":"batchnorm","name":"bn"}]}"#).unwrap();
    let w = pollster::block_on(Net::init(bn.clone(), 1, &device).read_weights()).unwrap();
    let bytes = weights::save(&bn, &w).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, vec!["bn.bias", "bn.num_batches_tracked", "bn.running_mean", "bn.running_var", "bn.weight"]);
    assert!(convlens_core::build(&bn.json.to_string(), Some(&bytes), 0, &device).is_ok());
}
