"""Evaluation (pipeline only): classifier accuracy and confusion, super-resolution PSNR/SSIM against bicubic."""
