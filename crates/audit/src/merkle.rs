//! RFC 6962 / RFC 9162 Merkle trees over SHA-256: leaf and node hashing, roots, inclusion and
//! consistency proofs, their verification (RFC 9162 §2.1.3.2 and §2.1.4.2), and a compact
//! frontier that appends leaves and yields the root in O(log n) memory.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below the tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("the proof has {got} hashes, {want} expected")]
    WrongLength { got: usize, want: usize },
    #[error("the computed root differs from the expected root")]
    RootMismatch,
    #[error("size {old} is not between 1 and {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("equal sizes need an empty proof and equal roots")]
    EqualSizes,
}

pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of a tree with these leaf hashes (MTH of RFC 6962 §2.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves` (PATH of RFC 6962 §2.1.1).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    if index >= leaves.len() {
        return Err(ProofError::IndexBeyondSize {
            index: index as u64,
            size: leaves.len() as u64,
        });
    }
    let mut proof = Vec::new();
    path(index, leaves, &mut proof);
    Ok(proof)
}

fn path(index: usize, leaves: &[Hash], proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path(index, &leaves[..k], proof);
        proof.push(root(&leaves[k..]));
    } else {
        path(index - k, &leaves[k..], proof);
        proof.push(root(&leaves[..k]));
    }
}

/// The consistency proof from the first `old` leaves to all of `leaves` (PROOF of RFC 6962
/// §2.1.2). `old` must be between 1 and the tree size.
pub fn consistency_proof(old: usize, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    if old == 0 || old > leaves.len() {
        return Err(ProofError::BadSizes {
            old: old as u64,
            new: leaves.len() as u64,
        });
    }
    let mut proof = Vec::new();
    subproof(old, leaves, true, &mut proof);
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// Verify that `leaf` is at `index` of the tree of `size` leaves with `root` (RFC 9162
/// §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected_root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let (inner, border) = decompose_inclusion(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let mut hash = *leaf;
    for (i, sibling) in proof[..inner].iter().enumerate() {
        hash = if (index >> i) & 1 == 0 {
            node_hash(&hash, sibling)
        } else {
            node_hash(sibling, &hash)
        };
    }
    for sibling in &proof[inner..] {
        hash = node_hash(sibling, &hash);
    }
    if hash[..] == *expected_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// How many proof hashes sit inside the perfect subtree holding `index`, and how many on the
/// right border of the tree.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

/// Verify that the tree of `new` leaves with `new_root` extends the tree of `old` leaves
/// with `old_root` (RFC 9162 §2.1.4.2). An empty old tree proves nothing and is refused.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::EqualSizes)
        };
    }
    // The old tree's last leaf, seen from the level where the old tree stops being a
    // complete left subtree of the new one (transparency-dev/merkle's formulation).
    let shift = old.trailing_zeros();
    let (inner, border) = decompose_inclusion(old - 1, new);
    let inner = inner - shift as usize;
    let starts_with_old_root = old == 1 << shift;
    let want = inner + border + usize::from(!starts_with_old_root);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (seed, rest) = if starts_with_old_root {
        let Ok(old_root) = Hash::try_from(old_root) else {
            return Err(ProofError::RootMismatch);
        };
        (old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let mask = (old - 1) >> shift;
    let mut old_hash = seed;
    let mut new_hash = seed;
    for (i, sibling) in rest[..inner].iter().enumerate() {
        if (mask >> i) & 1 == 1 {
            old_hash = node_hash(sibling, &old_hash);
            new_hash = node_hash(sibling, &new_hash);
        } else {
            new_hash = node_hash(&new_hash, sibling);
        }
    }
    for sibling in &rest[inner..] {
        old_hash = node_hash(sibling, &old_hash);
        new_hash = node_hash(sibling, &new_hash);
    }
    if old_hash[..] == *old_root && new_hash[..] == *new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a growing tree: one hash per set bit of the size, so appending a leaf
/// and reading the root cost O(log n) time and memory. The verifier streams a whole log
/// through one of these; the signer computes new roots with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees that make up the tree, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Each trailing one bit of the old size is a peak of equal height to merge with.
        while size & 1 == 1 {
            let left = self.peaks.pop().unwrap_or(hash);
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_frontier_root_is_the_tree_root_at_every_size() {
        let all = leaves(70);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&all[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn generated_proofs_verify_and_tampered_ones_do_not() {
        let all = leaves(37);
        for size in 1..=all.len() {
            let tree = &all[..size];
            let tree_root = root(tree);
            for index in 0..size {
                let proof = inclusion_proof(index, tree).unwrap();
                verify_inclusion(index as u64, size as u64, &tree[index], &proof, &tree_root)
                    .unwrap();
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = leaf_hash(first);
                    assert!(
                        verify_inclusion(index as u64, size as u64, &tree[index], &bad, &tree_root)
                            .is_err()
                    );
                }
            }
            for old in 1..=size {
                let proof = consistency_proof(old, tree).unwrap();
                verify_consistency(
                    old as u64,
                    size as u64,
                    &root(&all[..old]),
                    &tree_root,
                    &proof,
                )
                .unwrap();
                if old < size {
                    let other = leaf_hash(b"forged");
                    assert!(
                        verify_consistency(old as u64, size as u64, &other, &tree_root, &proof)
                            .is_err()
                    );
                }
            }
        }
    }
}
