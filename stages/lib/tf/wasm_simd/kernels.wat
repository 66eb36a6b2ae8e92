;; Kernels with WebAssembly SIMD on tfjs-backend-wasm's heap, where tfjs 4.22 runs scalar loops.
;; Each rounds exactly as the tfjs kernel it replaces (same operations in the same order), so
;; results are bit-identical. The memory is imported: "env" "memory", shared or not (two builds
;; of this file, see tools/build_wasm.ts).
;;
;; bmm(a, b, c, batch, m, k, n): for each of `batch` products, C = A · B with A [m, k], B [k, n],
;; C [m, n], row-major, consecutive in memory (a, b, c are byte addresses of the first ones).
;; Requires m % 4 == 0 and n % 8 == 0 (the caller checks). A 4 x 8 block of C is held in eight
;; f32x4 registers while k runs.
;;
;; Bit-exact with tfjs-backend-wasm 4.22's slow_batch_matmul, which this replaces for batched
;; products: every element is summed over k in blocks of 48, each block from 0 in order of k (a
;; product, then an add: no fused multiply-add), and the block sums are added to a total that
;; starts at 0.
;;
;; copy_rows(dst, src, bytes, rows, dst_stride, src_stride): `rows` copies of `bytes` bytes, the
;; r-th from src + r * src_stride to dst + r * dst_stride (memory.copy: a memmove). JS copies of
;; views of a shared memory go element by element; this is what Concat, Identity and the
;; patched Slice / SplitV copy with.
;;
;; sum_rows(x, out, rows, cols): out[j] = the sum over i of x[i, j], for x [rows, cols] row-major:
;; a reduction over leading axes (a bias gradient) without transposing. Four columns a vector,
;; each summed from 0 in order of i, as tfjs' Sum sums the transposed rows.
(module
  (import "env" "memory" (memory 1 65536 shared))
  (func (export "bmm")
    (param $a i32) (param $b i32) (param $c i32) (param $batch i32)
    (param $m i32) (param $k i32) (param $n i32)
    (local $kb i32) (local $nb i32) (local $kb2 i32) (local $kb3 i32)
    (local $i i32) (local $j i32) (local $k0 i32) (local $pend i32) (local $p i32)
    (local $pa i32) (local $pb i32) (local $cp i32)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $b0 v128) (local $b1 v128)
    (local $t00 v128) (local $t01 v128) (local $t10 v128) (local $t11 v128)
    (local $t20 v128) (local $t21 v128) (local $t30 v128) (local $t31 v128)
    (local $u00 v128) (local $u01 v128) (local $u10 v128) (local $u11 v128)
    (local $u20 v128) (local $u21 v128) (local $u30 v128) (local $u31 v128)
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $kb2 (i32.shl (local.get $kb) (i32.const 1)))
    (local.set $kb3 (i32.add (local.get $kb2) (local.get $kb)))
    (block $batches_done
      (loop $batches
        (br_if $batches_done (i32.eqz (local.get $batch)))
        (local.set $i (i32.const 0))
        (block $rows_done
          (loop $rows
            (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
            (local.set $j (i32.const 0))
            (block $cols_done
              (loop $cols
                (br_if $cols_done (i32.ge_u (local.get $j) (local.get $n)))
                (local.set $t00 (v128.const i64x2 0 0)) (local.set $t01 (v128.const i64x2 0 0))
                (local.set $t10 (v128.const i64x2 0 0)) (local.set $t11 (v128.const i64x2 0 0))
                (local.set $t20 (v128.const i64x2 0 0)) (local.set $t21 (v128.const i64x2 0 0))
                (local.set $t30 (v128.const i64x2 0 0)) (local.set $t31 (v128.const i64x2 0 0))
                (local.set $k0 (i32.const 0))
                (block $kblocks_done
                  (loop $kblocks
                    (br_if $kblocks_done (i32.ge_u (local.get $k0) (local.get $k)))
                    (local.set $u00 (v128.const i64x2 0 0)) (local.set $u01 (v128.const i64x2 0 0))
                    (local.set $u10 (v128.const i64x2 0 0)) (local.set $u11 (v128.const i64x2 0 0))
                    (local.set $u20 (v128.const i64x2 0 0)) (local.set $u21 (v128.const i64x2 0 0))
                    (local.set $u30 (v128.const i64x2 0 0)) (local.set $u31 (v128.const i64x2 0 0))
                    ;; pend = min(k0 + 48, k)
                    (local.set $pend (i32.add (local.get $k0) (i32.const 48)))
                    (if (i32.gt_u (local.get $pend) (local.get $k))
                      (then (local.set $pend (local.get $k))))
                    (local.set $p (local.get $k0))
                    ;; pa = a + i*kb + p*4;  pb = b + p*nb + j*4
                    (local.set $pa (i32.add (local.get $a)
                      (i32.add (i32.mul (local.get $i) (local.get $kb))
                               (i32.shl (local.get $p) (i32.const 2)))))
                    (local.set $pb (i32.add (local.get $b)
                      (i32.add (i32.mul (local.get $p) (local.get $nb))
                               (i32.shl (local.get $j) (i32.const 2)))))
                    (loop $inner
                      (local.set $b0 (v128.load (local.get $pb)))
                      (local.set $b1 (v128.load offset=16 (local.get $pb)))
                      (local.set $s0 (f32x4.splat (f32.load (local.get $pa))))
                      (local.set $s1 (f32x4.splat (f32.load
                        (i32.add (local.get $pa) (local.get $kb)))))
                      (local.set $s2 (f32x4.splat (f32.load
                        (i32.add (local.get $pa) (local.get $kb2)))))
                      (local.set $s3 (f32x4.splat (f32.load
                        (i32.add (local.get $pa) (local.get $kb3)))))
                      (local.set $u00 (f32x4.add (local.get $u00) (f32x4.mul (local.get $s0) (local.get $b0))))
                      (local.set $u01 (f32x4.add (local.get $u01) (f32x4.mul (local.get $s0) (local.get $b1))))
                      (local.set $u10 (f32x4.add (local.get $u10) (f32x4.mul (local.get $s1) (local.get $b0))))
                      (local.set $u11 (f32x4.add (local.get $u11) (f32x4.mul (local.get $s1) (local.get $b1))))
                      (local.set $u20 (f32x4.add (local.get $u20) (f32x4.mul (local.get $s2) (local.get $b0))))
                      (local.set $u21 (f32x4.add (local.get $u21) (f32x4.mul (local.get $s2) (local.get $b1))))
                      (local.set $u30 (f32x4.add (local.get $u30) (f32x4.mul (local.get $s3) (local.get $b0))))
                      (local.set $u31 (f32x4.add (local.get $u31) (f32x4.mul (local.get $s3) (local.get $b1))))
                      (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
                      (local.set $pb (i32.add (local.get $pb) (local.get $nb)))
                      (local.set $p (i32.add (local.get $p) (i32.const 1)))
                      (br_if $inner (i32.lt_u (local.get $p) (local.get $pend))))
                    (local.set $t00 (f32x4.add (local.get $t00) (local.get $u00)))
                    (local.set $t01 (f32x4.add (local.get $t01) (local.get $u01)))
                    (local.set $t10 (f32x4.add (local.get $t10) (local.get $u10)))
                    (local.set $t11 (f32x4.add (local.get $t11) (local.get $u11)))
                    (local.set $t20 (f32x4.add (local.get $t20) (local.get $u20)))
                    (local.set $t21 (f32x4.add (local.get $t21) (local.get $u21)))
                    (local.set $t30 (f32x4.add (local.get $t30) (local.get $u30)))
                    (local.set $t31 (f32x4.add (local.get $t31) (local.get $u31)))
                    (local.set $k0 (i32.add (local.get $k0) (i32.const 48)))
                    (br $kblocks)))
                ;; cp = c + i*nb + j*4; four rows of two vectors
                (local.set $cp (i32.add (local.get $c)
                  (i32.add (i32.mul (local.get $i) (local.get $nb))
                           (i32.shl (local.get $j) (i32.const 2)))))
                (v128.store (local.get $cp) (local.get $t00))
                (v128.store offset=16 (local.get $cp) (local.get $t01))
                (local.set $cp (i32.add (local.get $cp) (local.get $nb)))
                (v128.store (local.get $cp) (local.get $t10))
                (v128.store offset=16 (local.get $cp) (local.get $t11))
                (local.set $cp (i32.add (local.get $cp) (local.get $nb)))
                (v128.store (local.get $cp) (local.get $t20))
                (v128.store offset=16 (local.get $cp) (local.get $t21))
                (local.set $cp (i32.add (local.get $cp) (local.get $nb)))
                (v128.store (local.get $cp) (local.get $t30))
                (v128.store offset=16 (local.get $cp) (local.get $t31))
                (local.set $j (i32.add (local.get $j) (i32.const 8)))
                (br $cols)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $rows)))
        ;; the next product
        (local.set $a (i32.add (local.get $a) (i32.mul (local.get $m) (local.get $kb))))
        (local.set $b (i32.add (local.get $b) (i32.mul (local.get $k) (local.get $nb))))
        (local.set $c (i32.add (local.get $c) (i32.mul (local.get $m) (local.get $nb))))
        (local.set $batch (i32.sub (local.get $batch) (i32.const 1)))
        (br $batches))))

  (func (export "sum_rows")
    (param $x i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $cb i32) (local $j i32) (local $i i32) (local $p i32) (local $acc v128) (local $s f32)
    (local $vend i32)
    (local.set $cb (i32.shl (local.get $cols) (i32.const 2)))
    ;; columns in fours
    (local.set $vend (i32.and (local.get $cols) (i32.const -4)))
    (local.set $j (i32.const 0))
    (block $vdone
      (loop $vcols
        (br_if $vdone (i32.ge_u (local.get $j) (local.get $vend)))
        (local.set $acc (v128.const i64x2 0 0))
        (local.set $p (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rdone
          (loop $rows
            (br_if $rdone (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $acc (f32x4.add (local.get $acc) (v128.load (local.get $p))))
            (local.set $p (i32.add (local.get $p) (local.get $cb)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows)))
        (v128.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (local.get $acc))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $vcols)))
    ;; the last cols % 4 columns, one at a time
    (block $sdone
      (loop $scols
        (br_if $sdone (i32.ge_u (local.get $j) (local.get $cols)))
        (local.set $s (f32.const 0))
        (local.set $p (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rdone2
          (loop $rows2
            (br_if $rdone2 (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $s (f32.add (local.get $s) (f32.load (local.get $p))))
            (local.set $p (i32.add (local.get $p) (local.get $cb)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows2)))
        (f32.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
          (local.get $s))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $scols))))

  (func (export "copy_rows")
    (param $dst i32) (param $src i32) (param $bytes i32) (param $rows i32)
    (param $dstStride i32) (param $srcStride i32)
    (block $done
      (loop $rows
        (br_if $done (i32.eqz (local.get $rows)))
        (memory.copy (local.get $dst) (local.get $src) (local.get $bytes))
        (local.set $dst (i32.add (local.get $dst) (local.get $dstStride)))
        (local.set $src (i32.add (local.get $src) (local.get $srcStride)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $rows))))
)
